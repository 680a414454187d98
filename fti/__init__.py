"""Shared code of the FTI platform: settings, assets, validation and Feast helpers."""

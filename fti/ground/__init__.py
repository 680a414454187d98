"""Ground: what every pipeline and application stands on (settings, assets, dates, files,
validation, the Feast configuration and the feature contract). Nothing here imports a
pipeline or an application; importing a module here reads nothing from disk."""

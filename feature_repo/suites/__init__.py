"""The feature pipeline's Great Expectations suites: raw tables and one suite per batch feature view."""

"""The app facade's parts, one module per subject; pages import them through tl_core.app_api."""

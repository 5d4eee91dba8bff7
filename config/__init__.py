"""Configuration: settings read once from the environment (prefix TEAMSCONNECT_)."""

from config.settings import Settings, SettingsError, get_settings

__all__ = ["Settings", "SettingsError", "get_settings"]

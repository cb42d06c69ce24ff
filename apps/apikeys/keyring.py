"""The process-wide keyring built from settings (rebuilt when a test overrides the keys)."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from apps.apikeys.crypto import Keyring

_SETTINGS = {"SECRETS_MASTER_KEYS", "SECRETS_MASTER_KEY_VERSION"}


@lru_cache(maxsize=1)
def get_keyring() -> Keyring:
    return Keyring(settings.SECRETS_MASTER_KEYS, settings.SECRETS_MASTER_KEY_VERSION)


@receiver(setting_changed)
def _reset_keyring(*, setting: str, **kwargs) -> None:
    if setting in _SETTINGS:
        get_keyring.cache_clear()

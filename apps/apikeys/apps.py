from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    name = "apps.apikeys"
    label = "apikeys"
    verbose_name = "Broker API keys"

    def ready(self) -> None:
        # Registers the receiver that rebuilds the keyring when the master keys change.
        from apps.apikeys import keyring  # noqa: F401

"""``EncryptedField``: a model field whose value is only ever stored as an AES-256-GCM token.

Usage, for any secret the project stores (broker keys, webhook signing secrets, ...)::

    class Webhook(models.Model):
        uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
        owner = models.ForeignKey(User, ...)
        signing_secret = EncryptedField(associated_data=("owner_id", "uid"))

    hook.signing_secret = Secret("whsec_...")   # encrypted when the row is saved
    hook.save()
    reveal(hook, "signing_secret")               # -> "whsec_..." (decrypts)

- The attribute holds the token (``tpsec:<version>:...``), a pending ``Secret`` or ``None``;
  never the plaintext. ``str()`` of a token is just ciphertext.
- The associated data is the model label, the field name and the named attributes of the row
  (pick ones that exist before the INSERT, such as a UUID with a Python default and the
  owner's id). A token copied to another row, field or owner does not decrypt.
- ``update()`` / ``bulk_update()`` accept tokens only: a plaintext or a ``Secret`` there is
  refused, so nothing can bypass the encryption.
- ``fingerprint_field`` names the column holding ``Keyring.fingerprint`` of the plaintext;
  ``rotate_master_key`` recomputes it with the new master key.
- The field is not editable (no ModelForm or admin widget) and dumps as the token.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from django.apps import apps
from django.core import checks
from django.db import models

from apps.apikeys.crypto import Secret, is_token
from apps.apikeys.keyring import get_keyring

_SEP = b"\x1f"


class EncryptedField(models.TextField):
    description = "A secret stored encrypted (AES-256-GCM)"

    def __init__(
        self,
        *args,
        associated_data: Sequence[str] = (),
        fingerprint_field: str | None = None,
        **kwargs,
    ) -> None:
        self.associated_data = tuple(associated_data)
        self.fingerprint_field = fingerprint_field
        kwargs.setdefault("editable", False)
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        path = "apps.apikeys.fields.EncryptedField"
        if self.associated_data:
            kwargs["associated_data"] = list(self.associated_data)
        if self.fingerprint_field:
            kwargs["fingerprint_field"] = self.fingerprint_field
        # Keep migrations short: only what differs from this field's own defaults.
        for key, ours, djangos in (
            ("editable", False, True),
            ("null", True, False),
            ("blank", True, False),
        ):
            value = kwargs.pop(key, djangos)
            if value != ours:
                kwargs[key] = value
        return name, path, args, kwargs

    def check(self, **kwargs):
        errors = super().check(**kwargs)
        names = {f.attname for f in self.model._meta.concrete_fields} | {
            f.name for f in self.model._meta.concrete_fields
        }
        for name in self.associated_data:
            if name not in names:
                errors.append(
                    checks.Error(
                        f"associated_data names {name!r}, which is not a field of "
                        f"{self.model._meta.label}.",
                        obj=self,
                        id="apikeys.E001",
                    )
                )
        if self.fingerprint_field and self.fingerprint_field not in names:
            errors.append(
                checks.Error(
                    f"fingerprint_field {self.fingerprint_field!r} is not a field of "
                    f"{self.model._meta.label}.",
                    obj=self,
                    id="apikeys.E002",
                )
            )
        return errors

    # --- the record's identity ---------------------------------------------------------

    def associated_data_for(self, instance: models.Model) -> bytes:
        parts = [self.model._meta.label_lower.encode(), self.name.encode()]
        for name in self.associated_data:
            value = getattr(instance, name)
            if value is None or value == "":
                raise ValueError(
                    f"{self.model._meta.label}.{self.name}: {name} must be set before the "
                    "secret is encrypted (it is part of the associated data)."
                )
            parts.append(f"{name}={value}".encode())
        return _SEP.join(parts)

    # --- writing -----------------------------------------------------------------------

    def pre_save(self, instance: models.Model, add: bool):
        value = getattr(instance, self.attname)
        if isinstance(value, Secret):
            token = get_keyring().encrypt(
                value.reveal(), associated_data=self.associated_data_for(instance)
            )
            setattr(instance, self.attname, token)
            return token
        return value

    def get_prep_value(self, value):
        if isinstance(value, Secret):
            raise TypeError(
                f"{self.model._meta.label}.{self.name} is encrypted when its row is saved; "
                "assign a Secret and call save(), not update()."
            )
        value = super().get_prep_value(value)
        if value not in (None, "") and not is_token(value):
            raise ValueError(
                f"Refusing to store a value in {self.model._meta.label}.{self.name} that is "
                "not a ciphertext token; assign Secret(plaintext) and save()."
            )
        return value

    def formfield(self, **kwargs):
        return None

    # --- reading -----------------------------------------------------------------------

    def decrypt(self, instance: models.Model) -> str | None:
        value = getattr(instance, self.attname)
        if value is None or value == "":
            return None
        if isinstance(value, Secret):
            return value.reveal()
        return get_keyring().decrypt(value, associated_data=self.associated_data_for(instance))


def reveal(instance: models.Model, field_name: str) -> str | None:
    """The plaintext of ``instance.<field_name>`` (None when empty). Callers audit this."""
    field = instance._meta.get_field(field_name)
    if not isinstance(field, EncryptedField):
        raise TypeError(f"{field_name} is not an encrypted field.")
    return field.decrypt(instance)


def encrypted_models() -> Iterator[tuple[type[models.Model], list[EncryptedField]]]:
    """Every installed model with encrypted fields, and those fields (for key rotation)."""
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedField)]
        if fields and not model._meta.proxy:
            yield model, fields

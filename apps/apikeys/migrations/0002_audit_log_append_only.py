# The audit log is append-only in the database too: on PostgreSQL a trigger refuses every UPDATE
# and DELETE of its rows, whatever code (or person with a SQL prompt) tries. TRUNCATE is not
# covered: it needs the table owner's privilege, which the application's role should not have
# in production (the test runner uses it to empty tables between tests).

from django.db import migrations

TABLE = "apikeys_apikeyauditlog"

CREATE = f"""
CREATE OR REPLACE FUNCTION apikeys_audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'The API key audit log is append-only: % refused.', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER apikeys_audit_log_append_only
    BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION apikeys_audit_log_append_only();
"""

DROP = f"""
DROP TRIGGER IF EXISTS apikeys_audit_log_append_only ON {TABLE};
DROP FUNCTION IF EXISTS apikeys_audit_log_append_only();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("apikeys", "0001_initial")]

    operations = [
        migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP), elidable=False),
    ]

"""The roles mapping and users shared by the AppTest and browser tests of sign-in and roles."""

MAPPING = """
[[grant]]
group = "zorgteam-colorectaal"
role = "care_team"
conditions = ["colorectal_cancer"]

[[grant]]
group = "zorgteam-colorectaal-h01"
role = "care_team"
conditions = ["colorectal_cancer"]
hospitals = ["H01"]

[[grant]]
group = "kwaliteit"
role = "quality"

[[grant]]
user = "manager@example.org"
role = "manager"
hospitals = ["H01"]

[[grant]]
group = "beheer"
role = "admin"
"""

#: OIDC claims per test user (the browser test's provider uses the key as the user's sub).
USERS = {
    "care": {"email": "care@example.org", "name": "Care Team", "groups": ["zorgteam-colorectaal"]},
    # a care team limited to one hospital (patient rows and small numbers of its own hospital only)
    "care_h01": {"email": "care-h01@example.org", "name": "Care Team H01", "groups": ["zorgteam-colorectaal-h01"]},
    "quality": {"email": "quality@example.org", "name": "Quality", "groups": ["kwaliteit"]},
    "manager": {"email": "manager@example.org", "name": "Manager", "groups": []},
    "admin": {"email": "admin@example.org", "name": "Admin", "groups": ["beheer"]},
    "nobody": {"email": "nobody@example.org", "name": "Nobody", "groups": []},
}


def sign_in_with_roles(monkeypatch, tmp_path, engine) -> None:
    """The pages signed in (OpenID Connect) on `engine`'s registry with MAPPING as the access file; the caller
    clears vbhc.store.get_engine's cache (the engine it returns is read from the environment set here)."""
    mapping = tmp_path / "access.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    monkeypatch.setenv("VBHC_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("VBHC_ACCESS_FILE", str(mapping))
    monkeypatch.setenv("VBHC_AUTH", "oidc")

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

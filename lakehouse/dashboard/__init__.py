"""`lakehouse dashboard`: the warehouse read once (`snapshot`), rendered to a static page (`site`, `charts`, `templates/`)."""

"""Config schemas and checks (schema.py) and the generated reference, docs/configuration.md
(reference.py). Nothing is imported here: the schemas pull in the components they describe."""

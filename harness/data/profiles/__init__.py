"""The device profiles the package ships (one YAML file each), read through `harness.data.shipped_profiles`.
A package of its own so that setuptools ships its files as package data of a declared package."""

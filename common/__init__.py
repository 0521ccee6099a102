"""Small primitives every package may use; it imports none of the project's other packages."""

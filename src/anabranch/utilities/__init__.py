"""Helpers kept at the module paths users know."""

"""Automations on the server: evaluating triggers and carrying out their actions."""

"""Test scaffolding shared by the test modules; never installed."""

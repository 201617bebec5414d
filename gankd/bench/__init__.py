"""Runs, sweeps, the results store and reports: composes a run from the registries."""

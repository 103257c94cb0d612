"""The build pipeline: orchestration (pipeline, state, outputs, timestamps) and one module per stage.

Stages: stage_and_inspect, plan_axes, write_matrices, write_tables, finalize_release (and their helpers).
"""

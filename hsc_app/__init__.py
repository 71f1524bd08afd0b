"""The ``hsc`` command-line application: pipeline stages, tools, params and training orchestration."""

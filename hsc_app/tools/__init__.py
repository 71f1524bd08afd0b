"""Commands beside the pipeline stages: `hsc metrics`, `hsc import`, `hsc preset`."""

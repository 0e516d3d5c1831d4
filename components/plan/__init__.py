"""Plan: what a comparison asks for (options), its suite validated and expanded into trials (suites), and
the pipeline's arguments (arguments). The CLI plans before it runs or compiles anything."""

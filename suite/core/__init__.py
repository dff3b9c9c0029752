"""The shared vocabulary at the bottom of every layer: errors, spec grammar, parameter roles, the plugin
registry and progress reporting. It imports nothing else of gsibench."""

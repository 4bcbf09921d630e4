"""edgeroute core: embedders, stores, the hybrid engine, outbox, cache, audit, eval, CLI and the Gemini emulator."""

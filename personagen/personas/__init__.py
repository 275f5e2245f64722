"""personas stage: persona table schema and prompt rendering (styles: narrative, qa, bio, portray)."""

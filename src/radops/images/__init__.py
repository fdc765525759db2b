"""Local image work, as a service executors use (never an executor inside an executor).

- `context`: check a build context and hash it as Docker sends it into the image's tag.
- `engine`: the local Docker engine (docker-py, loaded on first use) and its error mapping.
- `build`: build an image on that engine.
- `registry`: registry credentials found here, and pushing an image.
- `service`: `LocalImages`: plan a tag, build it if missing, export or push it.
"""

"""Small helpers with no project dependencies: crash-safe writes, repository paths, generated Markdown sections, matplotlib set-up."""

"""lum.id for Lumilake (placeholder: install() lands in the next commit)."""

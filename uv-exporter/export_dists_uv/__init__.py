"""export-dists for uv workspaces: one wheel per member, content versions, `==` pins between members."""

"""FLARE components of the audit: the site's trail, the server's own trail and its keeper of the sites' trail heads."""

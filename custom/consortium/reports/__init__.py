"""A finished job's report: the cross-site table, learning curve and Markdown, and the imaging pictures."""

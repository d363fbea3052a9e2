"""Startup kits from project.yml: the project, provisioning, the site privacy scopes, adding a
site, the builders and the distributed (request / approve / package) flow.
"""

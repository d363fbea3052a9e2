"""A job folder from validation to its result: the rules and typed specs its values are checked by,
submission through FLARE's admin API, the watch on its sites, its report.
"""

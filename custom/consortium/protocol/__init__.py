"""The typed contracts between the site and the server (site result, evaluation, round record) and
the file names more than one layer shares. Pure: no nvflare.
"""

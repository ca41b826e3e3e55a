"""eximpy.acl"""

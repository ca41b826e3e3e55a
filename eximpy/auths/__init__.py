"""eximpy.auths"""

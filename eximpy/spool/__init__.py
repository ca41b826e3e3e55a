"""eximpy.spool"""

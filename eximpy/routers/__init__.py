"""eximpy.routers"""

"""eximpy.message"""

"""eximpy.log"""

"""eximpy.drivers"""

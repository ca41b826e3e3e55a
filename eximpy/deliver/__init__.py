"""eximpy.deliver"""

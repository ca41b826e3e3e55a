"""eximpy.proc"""

layer name=ÿþ tokens=1 out=1 in=1

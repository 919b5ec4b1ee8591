layer name=a tokens=1 out=4 in=4
mac x=0 xstride=4 y=0 count=1 acc=0

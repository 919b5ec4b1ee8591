layer name=a tokens=1 out=4 in=4
cfg n=2 m=4 agg=4
mac x=0 xstride=4294967295 y=0 count=4294967295 acc=0

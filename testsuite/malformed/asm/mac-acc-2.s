mac x=0 xstride=4 y=0 count=1 acc=2

st y=0 count=1 cols=1 dst=0 dstride=0

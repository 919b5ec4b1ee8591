layer name=a tokens=1 out=4 in=4
st y=0 count=4294967295 cols=65535 dst=4294967295 dstride=4294967295

layer name=l0 tokens=8192 out=8192 in=1
layer name=l1 tokens=8192 out=8192 in=1
layer name=l2 tokens=8192 out=8192 in=1
layer name=l3 tokens=8192 out=8192 in=1
layer name=l4 tokens=8192 out=8192 in=1
layer name=l5 tokens=8192 out=8192 in=1
layer name=l6 tokens=8192 out=8192 in=1
layer name=l7 tokens=8192 out=8192 in=1

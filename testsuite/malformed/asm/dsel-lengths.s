dsel row=0 bus=0,1 s1=0 s2=0,1

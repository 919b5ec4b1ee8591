cfg n=3 m=5 agg=1

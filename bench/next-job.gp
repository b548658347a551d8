# SPDX-License-Identifier: MIT
# Next-job latency against jobs stored (bench/run passes `data` and `output`).
set terminal pngcairo size 800,480 font ",11"
set output output
set title "next job: latency against jobs stored"
set xlabel "jobs stored"
set ylabel "time per call (µs)"
set logscale xy
set xrange [700:1.4e6]
set format x "10^{%L}"
set format y "10^{%L}"
set grid
set key top left
plot data using 1:4 with linespoints lw 2 pt 7 title "original schema (v1 index)", \
     data using 1:2 with linespoints lw 2 pt 5 title "jobsched", \
     data using 1:3 with linespoints lw 2 pt 9 dt 2 title "hand-written C API, same schema"

# SPDX-License-Identifier: MIT
# Runs the demo window's --self-test on a virtual X display, in the (fresh) working directory;
# with SCREENSHOT on, the window saves itself too, and the file must be a PNG.
#   cmake -D XVFB_RUN=<xvfb-run> -D DEMO=<demo> -D SCREENSHOT=0|1 -P test_gui.cmake

if(NOT DEFINED XVFB_RUN OR NOT DEFINED DEMO)
  message(FATAL_ERROR "test_gui.cmake: pass -D XVFB_RUN=<xvfb-run> -D DEMO=<demo>")
endif()

set(screenshot_arguments "")
if(SCREENSHOT)
  set(screenshot_arguments --screenshot demo.png)
endif()
# -a: a free display number, so tests and other programs on this machine do not collide.
execute_process(COMMAND "${XVFB_RUN}" -a -s "-screen 0 800x600x24"
                        "${DEMO}" --self-test ${screenshot_arguments}
                RESULT_VARIABLE result TIMEOUT 25)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "demo --self-test under xvfb-run exited with ${result}")
endif()

if(SCREENSHOT)
  file(READ demo.png signature LIMIT 8 HEX)
  if(NOT signature STREQUAL "89504e470d0a1a0a")
    message(FATAL_ERROR "demo --screenshot wrote no PNG file (it starts '${signature}')")
  endif()
  file(SIZE demo.png size)
  message(STATUS "demo.png: ${size} bytes")
endif()

# SPDX-License-Identifier: MIT
# Drives demo_terminal through a pipe, in sessions on one jobs.db in the (fresh) working
# directory, and checks every line each session prints.
#   cmake -D DEMO=<path to demo_terminal> -D CASE=runs_jobs|expires -P test_terminal.cmake

if(NOT DEFINED DEMO OR NOT DEFINED CASE)
  message(FATAL_ERROR "test_terminal.cmake: pass -D DEMO=<demo_terminal> -D CASE=<case>")
endif()
if(EXISTS jobs.db)
  message(FATAL_ERROR "test_terminal.cmake: run me in an empty directory; jobs.db is here")
endif()

# Runs one session: `feed`, a shell command, writes the session's stdin (it may sleep between
# lines: the pipe stays open meanwhile). The rest of the arguments are the lines expected on
# stdout, in order; <S> stands for seconds with two decimals. Sets `output` in the caller.
function(demo_session name feed)
  execute_process(COMMAND sh -c "${feed}"
                  COMMAND "${DEMO}"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULTS_VARIABLE results
                  TIMEOUT 20)
  set(expected "${ARGN}")
  set(problem "")
  if(NOT results MATCHES "^0;0$")  # (a session that hangs ends here too, killed at 20 s)
    set(problem "exit statuses (feed;demo) ${results}")
  elseif(NOT err STREQUAL "")
    set(problem "stderr was not empty")
  else()
    string(REGEX REPLACE "\n$" "" trimmed "${out}")
    set(lines "")
    if(NOT trimmed STREQUAL "")
      string(REPLACE "\n" ";" lines "${trimmed}")
    endif()
    list(LENGTH lines got)
    list(LENGTH expected want)
    if(NOT got EQUAL want)
      set(problem "${got} lines instead of ${want}")
    else()
      math(EXPR last "${want} - 1")
      foreach(index RANGE ${last})  # (${want} is at least 1: every session prints)
        list(GET lines ${index} line)
        list(GET expected ${index} want_line)
        string(REGEX REPLACE "([][.*+?^$()|\\])" "\\\\\\1" pattern "${want_line}")
        string(REPLACE "<S>" "[0-9]+\\.[0-9][0-9]" pattern "${pattern}")
        if(NOT line MATCHES "^${pattern}$")
          set(problem "'${line}' where '${want_line}' was expected")
          break()
        endif()
      endforeach()
    endif()
  endif()
  if(NOT problem STREQUAL "")
    string(REPLACE ";" "\n  " expected_text "${expected}")
    message(FATAL_ERROR "session '${name}': ${problem}\n"
                        "expected:\n  ${expected_text}\n"
                        "stdout:\n${out}\nstderr:\n${err}")
  endif()
  message(STATUS "session '${name}': as expected (${want} line(s))")
  set(output "${out}" PARENT_SCOPE)
endfunction()

function(wait_seconds seconds)
  execute_process(COMMAND "${CMAKE_COMMAND}" -E sleep ${seconds})
endfunction()

if(CASE STREQUAL "runs_jobs")
  # The window's story: two jobs, still pending a second later, completed by the runner at
  # 3 s while the input stays open, then cleaned up.
  demo_session(submit_and_wait
    "printf 'next\\ncount\\nsubmit\\nsubmit\\nnext\\ncount\\n'; sleep 1; printf 'count\\n'; sleep 3.5; printf 'next\\ncount\\ncleanup\\ncount\\n'"
    "No job is pending completion."
    "0 job(s) need to be completed."
    "Submitted job #1, expected completion in 3 seconds."
    "Submitted job #2, expected completion in 3 seconds."
    "The next job is #1, due in <S> seconds."
    "2 job(s) need to be completed."
    "2 job(s) need to be completed."
    "Completed job #1"
    "Completed job #2"
    "No job is pending completion."
    "0 job(s) need to be completed."
    "2 completed job(s) and 0 expired job(s) were cleaned up."
    "0 job(s) need to be completed.")
  if(NOT output MATCHES "due in (3\\.00|2\\.9[0-9]) seconds")
    message(FATAL_ERROR "a job submitted just now should be due in about 3 s:\n${output}")
  endif()

  # quit does not wait for a job due in 3 s (and ignores the lines after it); ids go on.
  demo_session(quit_before_due "printf 'submit\\nquit\\ncount\\n'"
    "Submitted job #3, expected completion in 3 seconds.")
  # A restart arms the runner for the job left in jobs.db; at the end of input (at once) it
  # waits for that job, due within a second, and completes it.
  wait_seconds(2.5)
  demo_session(restart_completes_left_job ":"
    "Completed job #3")
  demo_session(cleanup_after_restart "printf 'next\\ncleanup\\n'"
    "No job is pending completion."
    "1 completed job(s) and 0 expired job(s) were cleaned up.")

elseif(CASE STREQUAL "expires")
  # A job nobody runs before its 10 s are up expires, and Cleanup Jobs counts it as expired.
  demo_session(submit_and_leave "printf 'submit\\n'"
    "Submitted job #1, expected completion in 3 seconds.")
  wait_seconds(10.5)
  demo_session(after_expiry "printf 'count\\nnext\\ncleanup\\ncount\\n'"
    "0 job(s) need to be completed."
    "No job is pending completion."
    "0 completed job(s) and 1 expired job(s) were cleaned up."
    "0 job(s) need to be completed.")

else()
  message(FATAL_ERROR "test_terminal.cmake: unknown CASE '${CASE}'")
endif()

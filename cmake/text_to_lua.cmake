# Wraps a text file into a Lua module that returns it as one string (run with cmake -P).
# Inputs: IN (the text file), OUT (the .lua to write). Used to compile the offer catalog
# snapshot into skyhost, so `skyhost offers` works from any directory.
file(READ "${IN}" text)
string(FIND "${text}" "]==]" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains ]==], which would end the Lua long string")
endif()
file(WRITE "${OUT}.tmp" "-- Generated from ${IN} by cmake/text_to_lua.cmake. Do not edit.\nreturn [==[\n${text}]==]\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)

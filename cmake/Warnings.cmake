# redirect_warnings(target): the project's warning set; errors with REDIRECT_WERROR (CI).
function(redirect_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wformat=2 -Wundef)
  if(REDIRECT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

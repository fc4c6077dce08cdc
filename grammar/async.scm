; Queries for the asyncc dialect inside tree-sitter-c's grammar.
; The C library does not evaluate predicates, so parse.c checks that @async.kw
; spells `async` and @await.kw spells `await` itself.

; async(T) name(params) { body }
(function_definition
  type: (macro_type_specifier
          name: (identifier) @async.kw
          type: (type_descriptor) @async.type)
  declarator: (function_declarator
                declarator: (identifier) @async.name
                parameters: (parameter_list) @async.params)
  body: (compound_statement) @async.body) @async.def

; async(T) name(params);
(declaration
  type: (macro_type_specifier
          name: (identifier) @async.kw
          type: (type_descriptor) @async.type)
  declarator: (function_declarator
                declarator: (identifier) @async.name
                parameters: (parameter_list) @async.params)) @async.decl

; await(expr): every call to an identifier; parse.c keeps those named await.
(call_expression
  function: (identifier) @await.kw
  arguments: (argument_list)) @await.call
